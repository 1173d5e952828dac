// Package lora holds low-rank adapters for the frozen base models of package
// model, computed and stored the way Hugging Face PEFT does it.
//
// A targeted linear layer W [out, in] gets a pair A [r, in], B [out, r] and
// computes
//
//	y = x·Wᵀ + scaling · (x·Aᵀ)·Bᵀ,  scaling = alpha/r (or alpha/√r with rsLoRA).
//
// Config mirrors PEFT's LoraConfig (field names, defaults and module matching
// rules); New creates and initializes an Adapter for a base; Save and Load read
// and write PEFT's adapter_config.json + adapter_model.safetensors, so adapters
// move between golora and PEFT unchanged. Merge and Unmerge fold an adapter
// into a dense base and back, bit for bit; MergedDense produces a dense copy of
// a quantized (QLoRA) base with the adapter folded in, for export. Set
// keeps several named adapters for one base and says which one is active.
//
// Two hooks connect adapters to the model's forward passes:
//
//   - infer.Adapter, for plain-Go inference (infer.Generator): Adapter
//     and Set implement it with AddDelta, which adds the term to the
//     output of each frozen linear layer.
//   - graph.Adapter, for the gorgonia training graph (Delta(g, lin, x)
//     returning a node to add to x·Wᵀ): package lora/loragraph implements it
//     on top of what an Adapter exposes, Pair(lin.Name) giving the trainable
//     A [R, In] and B [Out, R] and Pair.Scaling the constant factor, with
//     Config.Dropout on x. It is a package of its own so that code that only
//     serves adapters (package serve) does not link gorgonia.
//
// Module names are the base family's own, as PEFT names them: q_proj, k_proj,
// v_proj, o_proj, gate_proj, up_proj, down_proj (and lm_head) for Llama,
// Mistral, Qwen2 and Qwen3. A Qwen2 base's q/k/v biases are frozen and get no
// adapter term of their own (PEFT's bias "none").
//
// Phi-3 stores q, k and v in one qkv_proj and gate and up in one gate_up_proj,
// and PEFT adapts those fused modules with one A for all parts and B stacked by
// rows. golora splits the fused weights at load and keeps one pair per split
// linear, which cannot represent PEFT's shared A and whose names PEFT could not
// load on Phi-3. So on a phi3 base, New trains adapters on o_proj, down_proj
// and an untied lm_head only, refusing qkv_proj, gate_up_proj and their parts
// with an error naming the fused module. PEFT adapters that do target the
// fused modules are read by LoadFor exactly: each fused pair becomes one pair
// per part with the same A and that part's rows of B, so generation and
// merging give PEFT's results; such an adapter cannot be trained further or
// saved (it would be saved from the files it came from).
package lora
