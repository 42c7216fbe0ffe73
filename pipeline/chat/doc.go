// Package chat turns a conversation (system, user and assistant messages) into
// the prompt text a chat model was trained on, by interpreting the model's chat
// template: the Jinja source in GGUF metadata tokenizer.chat_template or in a
// HuggingFace tokenizer_config.json.
//
// The interpreter implements the subset of Jinja2 that real chat templates use
// (those of Llama 2, Llama 3, Mistral, ChatML/Qwen2, Zephyr/TinyLlama and Phi-3
// are in testdata, with outputs produced by Jinja2 3.1 itself):
//
//   - {{ expr }}, {% if/elif/else/endif %}, {% for x in xs [if cond] %} with
//     {% else %} and loop.index/index0/revindex/revindex0/first/last/length/
//     previtem/nextitem, {% set x = expr %} and {% set ns.x = expr %} with
//     namespace(), {# comments #};
//   - whitespace control {%- -%} {{- -}}, and HuggingFace's environment
//     (trim_blocks and lstrip_blocks on), so templates written over several
//     lines render as transformers renders them;
//   - literals (strings, numbers, true/false/none, lists, dicts), attribute
//     access and indexing (message.content, message['content'], xs[-1],
//     xs[1:]), + - * / // % ~, comparisons, and/or/not, in / not in,
//     a if c else b;
//   - filters trim, length/count, upper, lower, capitalize, title, default/d,
//     first, last, join, replace, string, int, float, list, tojson, abs,
//     reverse; tests defined, undefined, none, string, number, integer, float,
//     boolean, mapping, sequence, iterable, true, false, even, odd, eq/==;
//     string methods strip/lstrip/rstrip/upper/lower/title/startswith/
//     endswith/split/replace and dict methods items/keys/values/get;
//     raise_exception(msg) and range(n).
//
// Anything else (macros, block set, includes, custom filters) is a parse error
// wrapping ErrUnsupported, never a panic; a caller falls back to Default and
// logs why. Undefined names render as empty text, as in Jinja2's default
// environment. Rendering is bounded (output size and evaluation steps), since a
// template arrives from the network with the model.
//
// Default is the template for models that carry none (base models such as
// stories260K): the messages' contents, in order, separated by a blank line,
// without role markers. A base model continues text; it was never taught roles,
// so a single user message becomes exactly its text, which is what a user of
// such a model through a chat API expects.
//
// What it deliberately is not: a general Jinja engine (no inheritance,
// includes, macros or autoescaping), nor a tokenizer: special tokens written
// by a template are recognised later, when the prompt is tokenized with
// control tokens parsed (pipeline.Request.Special).
package chat
