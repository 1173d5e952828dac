// Encodes strings.json (from make_strings.py) with the Hugging Face tokenizers
// library (npm package "tokenizers" 0.23.2, the Rust core through its Node
// binding) and writes golden_byte_level_bpe.json.
//   npm install tokenizers@0.23.2   (in a scratch directory outside the repository)
//   node tokenize_strings.js > golden_byte_level_bpe.json
const fs = require('fs')
const { Tokenizer } = require('tokenizers')

const files = { 'llama-3.2': 'llama3_tokenizer.json', 'qwen2.5': 'qwen25_tokenizer.json', smollm: 'smollm_tokenizer.json' }

async function main() {
  const strings = JSON.parse(fs.readFileSync('strings.json', 'utf8'))
  const ids = {}
  for (const [name, f] of Object.entries(files)) {
    const tok = Tokenizer.fromFile(f)
    ids[name] = []
    for (const s of strings) {
      const enc = await tok.encode(s, null, { addSpecialTokens: false })
      ids[name].push(enc.getIds())
    }
  }
  process.stdout.write(JSON.stringify({ strings, ids }) + '\n')
}
main()
