// Cross-check of render_chat.py: renders cases.json with @huggingface/jinja 0.5.11
// (the JavaScript Jinja of transformers.js) and compares with rendered.json.
//   npm install @huggingface/jinja@0.5.11 && node crosscheck_hf_jinja.mjs
import { Template } from '@huggingface/jinja'
import fs from 'fs'
const cases = JSON.parse(fs.readFileSync('cases.json', 'utf8'))
const rendered = JSON.parse(fs.readFileSync('rendered.json', 'utf8'))
let same = 0, diff = 0
for (const m of cases.models) {
  const cfg = JSON.parse(fs.readFileSync(m.tokenizer_config, 'utf8'))
  const tok = (v) => (v && typeof v === 'object' ? v.content : v)
  const t = new Template(cfg.chat_template)
  for (const c of cases.conversations) {
    const text = t.render({ messages: c.messages, add_generation_prompt: !!c.generation_prompt, bos_token: tok(cfg.bos_token), eos_token: tok(cfg.eos_token), ...cases.extra })
    const want = rendered.find((r) => r.model === m.name && r.case === c.name).text
    if (text === want) same++; else { diff++; console.log('DIFF', m.name, c.name) }
  }
}
console.log('same', same, 'diff', diff)
