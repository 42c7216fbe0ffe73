// Package kernels is the arithmetic of imece: the Backend interface the layer engine
// computes with, the tensor types of model files and their block layouts, and the CPU
// backend.
//
// The CPU backend is pure Go with assembly for the hot loops (AVX2/FMA and AVX-512,
// selected at run time, with a portable fallback that is always correct). Weights stay
// in their stored format; matrix-vector products dequantize on the fly, block by block,
// because decoding is bound by memory bandwidth and reading four or eight bits per
// weight instead of thirty-two is the whole game.
//
// It deliberately knows nothing about transformers beyond the handful of operations
// in Backend, nothing about files, and nothing about the network.
package kernels
