// Tokenizes the conversations rendered by render_chat.py with the Hugging
// Face tokenizers library (npm package "tokenizers" 0.23.2, the Rust core
// through its Node binding) and marks assistant tokens from the library's
// offsets: a token is an assistant token when its character range
// intersects an assistant span of rendered.json.
//   npm install tokenizers@0.23.2   (in a scratch directory outside the repository)
//   node tokenize_chat.js rendered.json > golden_chat.json
// Tokenizer files: ../../tokenizer/testdata/{llama3,qwen2.5}/tokenizer.json.gz
// (gunzipped) and ../../tokenizer/testdata/smollm/tokenizer.json, copied into
// the current directory as named below.
const fs = require('fs')
const { Tokenizer } = require('tokenizers')

const files = { 'llama-3.1': 'llama3_tokenizer.json', 'llama-3.2': 'llama3_tokenizer.json', 'qwen2.5': 'qwen25_tokenizer.json', smollm: 'smollm_tokenizer.json' }

async function main() {
  const rendered = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
  const toks = {}
  const cases = []
  for (const r of rendered) {
    toks[r.model] ??= Tokenizer.fromFile(files[r.model])
    const enc = await toks[r.model].encode(r.text, null, { addSpecialTokens: false })
    const assistant = enc.getOffsets().map(([a, b]) => (r.spans.some(([s, e]) => a < e && b > s) ? 1 : 0))
    cases.push({ model: r.model, case: r.case, text: r.text, ids: enc.getIds(), assistant })
  }
  process.stdout.write(JSON.stringify({ cases }) + '\n')
}
main()
