// Package chat renders conversations with a model's own chat template and
// tokenizes them for training, marking which tokens are the assistant's.
//
// A Template comes from a Hugging Face tokenizer_config.json (LoadConfig,
// ParseConfig): its "chat_template" (a string, or a list of named templates
// of which "default" is used), or a chat_template.jinja file beside it as
// recent transformers versions save it, and the bos_token and eos_token the
// template refers to. Templates are Jinja, rendered by
// github.com/ardanlabs/jinja with the conventions of transformers'
// apply_chat_template: trim_blocks and lstrip_blocks, loop controls,
// namespace, tojson, raise_exception and strftime_now.
//
// Template.Encode tokenizes a rendered conversation and marks the tokens of
// each assistant turn: its content and the text the template closes the turn
// with (such as <|eot_id|> or <|im_end|>), so that a model trained on them
// learns to stop. Everything else — system and user turns, the headers that
// open an assistant turn — is context only.
package chat
