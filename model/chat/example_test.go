package chat_test

import (
	"fmt"
	"log"

	"github.com/golora/golora/model/chat"
)

func Example() {
	config := []byte(`{
		"chat_template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
		"eos_token": "<|im_end|>"
	}`)
	tmpl, err := chat.ParseConfig(config, "tokenizer_config.json")
	if err != nil {
		log.Fatal(err)
	}
	text, err := tmpl.Render([]chat.Message{{Role: "user", Content: "Hi!"}}, chat.RenderOptions{AddGenerationPrompt: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Print(text)
	// Output:
	// <|im_start|>user
	// Hi!<|im_end|>
	// <|im_start|>assistant
}
