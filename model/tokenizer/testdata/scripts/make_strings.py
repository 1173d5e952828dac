"""Writes strings.json: the inputs whose token ids tests compare (fixed seed)."""
import json, random, unicodedata
fixed = [
 "", " ", "  ", "\n", "\n\n", " \n", "\r\n", "\t", " \t\n \n  x", "hello", " hello", "Hello world", "Hello  world",
 "Hello   world  ", "I'm here", "I'M HERE", "you're they've we'll she'd it's", "YOU'RE THEY'VE WE'LL SHE'D IT'S",
 "don't", "DON'T", "'s 'S 't 'T 're 'RE 've 'VE 'm 'M 'll 'LL 'd 'D", "o'clock", "rock'n'roll", "''", "'",
 "1", "12", "123", "1234", "12345", "1234567", "3.14159", "1,000,000", "v1.2.3", "2026-12-06", "x=42;y=-7",
 "a1b2c3", "٣٤٥", "①②③", "Ⅻ", "½ ¾", "…", "!!!", "?!\n", "...\n\n", "---\r\n", " (x)", "((()))", "a.b,c;d:e",
 "foo\n\nbar", "foo \n bar", "foo  \n  bar", "end.  ", "tabs\tand\tspaces", "  leading", "trailing  ",
 "<|im_start|>user\nhi<|im_end|>", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
 "<|im_start", "<|endoftext|>", "<tool_call>", "naïve café", "nai\u0308ve cafe\u0301", "Å", "A\u030a", "ﬁ", "Ｆｕｌｌｗｉｄｔｈ",
 "日本語のテキスト", "中文文本，标点。", "한국어 텍스트", "Русский текст", "Ελληνικά", "עברית", "العربية", "हिन्दी",
 "ภาษาไทย", "🙂", "👋🏽", "👨‍👩‍👧", "🇫🇷", "a🙂b", " 🙂 ", "\u00a0nbsp", "zero\u200bwidth", "\u3000ideographic",
 "\u2028line sep", "\x0bvt\x0cff", "NEL\u0085x", "mixed CASE Words", "snake_case_name", "camelCaseName",
 "https://example.com/path?q=1&r=2", "user@example.com", "#include <stdio.h>", "func main() {\n\tfmt.Println(\"hi\")\n}",
 "def f(x):\n    return x ** 2\n", "SELECT * FROM t WHERE a = 'b';", "$$\\frac{a}{b}$$", "<div class=\"x\">y</div>",
]
rng = random.Random(20261206)
pools = ["abcxyz", "ABCXYZ", "0123456789", " ", "  ", "\n", "\r\n", "\t", "'", "s", "ll", "re", ".,;:!?-",
         "éàüßñ", "日本語中文", "русский", "🙂👋", "\u0301", "_", "()[]{}", "\u00a0", "<|im_end|>", "’"]
rand = []
for i in range(300):
    n = rng.randint(1, 24)
    rand.append("".join(rng.choice(rng.choice(pools)) if rng.random() < 0.7 else rng.choice(pools) for _ in range(n)))
json.dump(fixed + rand, open("strings.json", "w"), ensure_ascii=False, indent=0)
print(len(fixed) + len(rand))
