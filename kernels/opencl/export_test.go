package opencl

// WithGroupMatVec makes decode products take the GPU's kernel (a work-group
// per row) on any device, so that PoCL tests it too.
func WithGroupMatVec() Option { return func(c *config) error { c.groupMatVec = true; return nil } }
