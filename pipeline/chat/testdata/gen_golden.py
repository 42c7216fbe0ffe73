# Regenerates golden.json with Jinja2 (3.1) in HuggingFace's chat-template
# environment: python3 gen_golden.py (from pipeline/chat/testdata).
import glob, json, os
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError

def raise_exception(msg):
    raise TemplateError(msg)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
env.globals["raise_exception"] = raise_exception
convs = json.load(open("conversations.json"))
out = {}
for path in sorted(glob.glob("templates/*.jinja")):
    t = env.from_string(open(path).read())
    name = os.path.basename(path)
    out[name] = {}
    for c in convs:
        try:
            r = t.render(messages=c["messages"], bos_token="<s>", eos_token="</s>", add_generation_prompt=c["add_generation_prompt"])
        except TemplateError as e:
            r = "ERROR: " + str(e)
        out[name][c["name"]] = r
json.dump(out, open("golden.json", "w"), indent=1, sort_keys=True)
