/* The reference forward pass of the DeepSeek architecture (V3 / R1 / V3.1 and V2 / V2-Lite) in
 * float32, and the evaluation helpers the logits / perplexity / kld commands share. The dense GQA
 * decoders (qwen2: R1-Distill-Qwen; llama: R1-Distill-Llama, DeepSeek LLM) run through the same
 * API with the math of transformers' Qwen2 / Llama models (docs/distills.md).
 *
 * The math is DeepSeek's own inference code (inference/model.py at 9b4e978) as specified in the
 * oracle's NOTES.md: prefill from position 0, causal, logits at every position. Weights stay
 * mmapped and are read only through dc_weight_rows (any storage: BF16, F16, F32, FP8 + block
 * scale); they are dequantised per row block into per-thread scratch, or kept in an optional
 * bounded cache. Results are bit-identical for any number of OpenMP threads: every output element
 * is computed by one thread with a fixed summation order. docs/forward.md describes the layout.
 *
 * Thread safety: a dc_model may be used by one dc_forward call at a time (the weight cache and
 * the scratch buffers belong to the model); dc_forward itself runs OpenMP-parallel inside. */
#ifndef DC_FORWARD_H
#define DC_FORWARD_H
#include "dc_ckpt.h"

/* ---- model ---------------------------------------------------------------------------------- */

typedef struct dc_fwd_opts {
    int deq_mode;         /* DC_DEQ_BF16_ROUND (default, = DeepSeek's bf16(f32(fp8) * scale)) or DC_DEQ_EXACT */
    int64_t max_seq_len;  /* model.py's ModelArgs.max_seq_len (16384): YaRN and mscale^2 apply iff it exceeds
                           * rope_scaling.original_max_position_embeddings */
    uint64_t mem_budget;  /* bytes of dequantised f32 weights kept between calls (0 = none) */
    bool mtp;             /* also load and run the MTP layer when the config has exactly one
                           * (num_nextn_predict_layers = 1, DeepSeek-V3) and the checkpoint has it: its routing is recorded as the last routed layer
                           * (tokens 0..n-2; the last token has no MTP input: ids -1). See docs/forward.md */
} dc_fwd_opts;

#define DC_FWD_DEFAULT_MEM_BUDGET ((uint64_t)256 << 20)

void dc_fwd_opts_default(dc_fwd_opts *o);

typedef struct dc_model dc_model;

/* Validates every tensor the forward pass needs against the config (presence, shape, float dtype,
 * FP8 block scales) and prepares the model. The checkpoint must outlive the model. Errors:
 * DC_ERR_CONFIG (no config.json), DC_ERR_MODEL (missing / mis-shaped tensor or scale, naming both
 * shapes), DC_ERR_UNSUPPORTED (dtype). MTP layers (index >= num_hidden_layers) are ignored. */
dc_status dc_model_load(const dc_ckpt *ck, const dc_fwd_opts *opts, dc_model **out, dc_err *err);
void dc_model_free(dc_model *m);

const dc_config *dc_model_config(const dc_model *m);
int64_t dc_model_vocab(const dc_model *m);
int64_t dc_model_hidden(const dc_model *m);
/* The routed-expert layers, in order (n = number of them; layers[i] = layer index). */
int dc_model_moe_layers(const dc_model *m, const int **layers);
/* Whether layer's router has an e_score_correction_bias (read from the checkpoint). */
bool dc_model_has_router_bias(const dc_model *m);
/* The softmax scale (with YaRN's mscale^2 when active; head_dim^-0.5 for the dense archs) and the
 * RoPE inverse frequencies (qk_rope_head_dim / 2 floats, = head_dim / 2 for the dense archs,
 * llama3-scaled when configured), for tests and docs. */
float dc_model_softmax_scale(const dc_model *m);
const float *dc_model_rope_freqs(const dc_model *m);
/* Bytes of dequantised weights currently cached. */
uint64_t dc_model_cached_bytes(const dc_model *m);

/* ---- activation hook (deepcast imatrix) ---------------------------------------------------- */

/* The input rows of a weight matrix product, reported before the product: x[t * ld + h * hs + j]
 * for token t < n, matrix h < n_mat, column j < cols. role is the weight's dc_role (layer and
 * expert from its name; n_mat 1), or one of the two products llama.cpp's MLA graph has and the
 * non-absorbed forward pass does not: DC_ACT_K_B (attn_k_b: the per-head nope queries, n_mat =
 * heads, cols = qk_nope_head_dim) and DC_ACT_V_B (attn_v_b: the per-head attention outputs in
 * latent space, sum_t p_t * kv_a_layernorm(latent_t), cols = kv_lora_rank; computed only while a
 * hook is set). Called from the calling thread, in the order of the computation. */
enum { DC_ACT_K_B = DC_ROLE_COUNT + 1, DC_ACT_V_B };
typedef struct dc_act {
    int role, layer, expert;
    const float *x;
    int64_t n, n_mat, cols, ld, hs;
} dc_act;
typedef void (*dc_act_hook)(void *ud, const dc_act *a);
/* Sets (NULL: clears) the hook of every later dc_forward call. */
void dc_model_set_act_hook(dc_model *m, dc_act_hook hook, void *ud);

/* ---- forward -------------------------------------------------------------------------------- */

/* Routing decisions of one forward pass: per MoE layer, per token, the chosen experts in selection
 * order (descending biased score, ties to the lower id) and their final weights (unbiased score,
 * renormalised for sigmoid, times routed_scaling_factor). */
typedef struct dc_routing {
    int n_layers;   /* MoE layers */
    int64_t n_tokens;
    int top_k;
    int *layer;     /* [n_layers] layer index */
    int32_t *idx;   /* [n_layers][n_tokens][top_k] */
    float *w;       /* [n_layers][n_tokens][top_k] */
} dc_routing;

void dc_routing_free(dc_routing *r);

typedef struct dc_fwd_out {
    float *logits;       /* [n][vocab] or NULL */
    dc_routing *routing; /* filled (allocated) if non-NULL; free with dc_routing_free */
    float *hidden;       /* [n_layers + 2][n][hidden] or NULL: the embeddings, the residual stream after
                          * each block, the final-norm output (the oracle's seq64.hidden.f32 stages) */
} dc_fwd_out;

/* Runs tokens[0..n) from position 0. Token ids outside [0, vocab) are DC_ERR_INPUT. */
dc_status dc_forward(dc_model *m, const int32_t *tokens, int64_t n, dc_fwd_out *out, dc_err *err);

/* The same forward pass one layer at a time, for collections that go layer by layer over many
 * sequences (GPTQ's Hessians: one layer's at a time in memory). A state holds one sequence's
 * residual stream between layers; dc_fwd_state_step runs the next layer on it (the operations of
 * dc_forward, so the activation hook sees the same rows), after the last one the MTP layer when
 * the model runs it (dc_fwd_opts.mtp), as dc_forward does when routing is requested. */
typedef struct dc_fwd_state dc_fwd_state;
dc_status dc_fwd_state_new(dc_model *m, const int32_t *tokens, int64_t n, dc_fwd_state **out, dc_err *err);
dc_status dc_fwd_state_step(dc_model *m, dc_fwd_state *s, dc_err *err);
void dc_fwd_state_free(dc_fwd_state *s);
/* The residual stream [n][hidden] after the layers run so far (not changed by the MTP layer). */
const float *dc_fwd_state_hidden(const dc_fwd_state *s);
int dc_model_n_layers(const dc_model *m);
bool dc_model_has_mtp(const dc_model *m);

/* ---- evaluation helpers (verify/dc_fwd_eval.c) ---------------------------------------------- */

/* Reads a token file: whitespace-separated decimal ids, or a JSON list of integers. Empty or
 * garbled content is DC_ERR_INPUT naming the file and the offending offset. */
dc_status dc_tokens_load(const char *path, int32_t **ids, size_t *n, dc_err *err);
dc_status dc_tokens_parse(const char *text, size_t len, const char *name, int32_t **ids, size_t *n, dc_err *err);
/* DC_ERR_INPUT naming `what`, the position and the id if one is outside [0, vocab). */
dc_status dc_tokens_check(const int32_t *ids, size_t n, int64_t vocab, const char *what, dc_err *err);

/* log(sum_i exp(row[i])) in double. */
double dc_logsumexp(const float *row, int64_t n);
/* Index of the largest element (the first one on ties). */
int64_t dc_argmax(const float *row, int64_t n);

/* Chunking of a token sequence for scoring. Plain mode: chunks of ctx tokens (the last one may be
 * shorter; one shorter than 2 tokens is dropped), each starting at position 0, every next-token
 * prediction inside a chunk scored. llama.cpp-compatible mode (perplexity.cpp): n / ctx full
 * chunks, the first token of each chunk replaced by BOS, only predictions from position ctx/2 on
 * scored (ctx - 1 - ctx/2 per chunk), at least 2 * ctx tokens required. */
typedef struct dc_chunking {
    int64_t ctx, n_chunks;
    bool llama_compat;
    int32_t bos; /* llama mode: the id put in front of each chunk (-1: keep the first token) */
} dc_chunking;

dc_status dc_chunking_init(dc_chunking *c, int64_t n_tokens, int64_t ctx, bool llama_compat, int32_t bos,
                           dc_err *err);
/* Chunk i: tokens [*start, *start + *len); positions first..len-2 are scored. */
void dc_chunk_range(const dc_chunking *c, int64_t n_tokens, int64_t i, int64_t *start, int64_t *len, int64_t *first);
int64_t dc_chunking_scored(const dc_chunking *c, int64_t n_tokens);

/* Negative log-likelihood statistics (llama.cpp's uncertainty formula). */
typedef struct dc_nll_acc {
    double sum, sum2;
    int64_t count;
} dc_nll_acc;
void dc_nll_add(dc_nll_acc *a, double nll);
double dc_nll_mean(const dc_nll_acc *a);
/* PPL and its uncertainty: ppl * sqrt((E[nll^2] - E[nll]^2) / (count - 1)). */
double dc_nll_ppl(const dc_nll_acc *a, double *ppl_stderr);

/* Per-position distribution summary of a base model: the top-k log-probs, the log-prob of the
 * actual next token and the log of the probability mass outside the top k (a "base-logits" file
 * record; docs/forward.md). All log-probs are float32 values of double computations. */
typedef struct dc_topk_rec {
    float logp_target;  /* log p(next token) */
    float log_rest;     /* log(mass outside the top k); -inf if none */
    int32_t *ids;       /* [k], descending probability (ids[0] = argmax, ties to the lower id) */
    float *logp;        /* [k] */
} dc_topk_rec;

/* Fills rec (ids/logp must hold k entries) from one row of logits. */
void dc_topk_from_logits(const float *row, int64_t vocab, int k, int32_t target, dc_topk_rec *rec);

/* KL divergence / agreement accumulator over positions (llama.cpp's KLD report). */
typedef struct dc_kld_acc {
    dc_nll_acc nll_model, nll_base;
    double sum_nll_cross; /* sum nll_model * nll_base */
    double sum_kld, sum_kld2;
    double sum_dp, sum_dp2, sum_dp4;
    int64_t n_same_top, count;
    float *kld;  /* per position, for percentiles */
    float *dp;   /* p_model(next) - p_base(next) */
    size_t cap;
    bool oom;
} dc_kld_acc;

/* Exact KL(base || model) over the whole vocabulary for one position. */
double dc_kld_full(const float *base_row, const float *model_row, int64_t vocab);
/* KL from a base top-k record: sum_top p_b (log p_b - log p_m) + R_b (log R_b - log R_m), where
 * R = the mass outside the base's top-k ids. Exact when R_b == 0; otherwise the KL of the
 * distributions coarsened to (top-k ids, rest), a lower bound of the full KL. */
double dc_kld_topk(const dc_topk_rec *base, int k, const float *model_row, int64_t vocab, uint8_t *mark);
/* Adds one position. */
void dc_kld_add(dc_kld_acc *a, double kld, double nll_base, double nll_model, bool same_top);
void dc_kld_free(dc_kld_acc *a);
/* Percentile (fraction in [0, 1]) of the sorted values, linear interpolation (llama.cpp's rule). */
double dc_percentile_sorted(const float *sorted, size_t n, double fraction);

/* ---- command plumbing ---------------------------------------------------------------------- */

/* Opens a checkpoint and loads its model; on failure both are NULL and err names the path. */
dc_status dc_fwd_open(const char *path, const dc_fwd_opts *opts, dc_ckpt **ck, dc_model **m, dc_err *err);
void dc_fwd_close(dc_ckpt *ck, dc_model *m);

/* The evaluation tokens: from a token file (tokens_path), or from a UTF-8 text file (text_path)
 * tokenized with the tokenizer in tok_dir, special tokens (BOS) added. *bos receives the id that
 * llama.cpp-compatible scoring puts in front of each chunk: the tokenizer's BOS if it adds one
 * (text), else cfg_bos (token files; -1 = none). Fewer than 2 tokens is DC_ERR_INPUT. */
dc_status dc_fwd_input(const char *tokens_path, const char *text_path, const char *tok_dir, int64_t cfg_bos,
                       int32_t **ids, size_t *n, int32_t *bos, dc_err *err);

/* The tokens of chunk i as dc_fwd_chunk runs them (llama mode: its BOS in front), malloc'd into
 * *out (*len of them). */
dc_status dc_chunk_tokens(const dc_chunking *ch, const int32_t *tokens, int64_t n_tokens, int64_t i, int32_t **out,
                          int64_t *len, dc_err *err);
/* Runs chunk i of the chunking (BOS substituted in llama mode) into logits [len][vocab] (len from
 * dc_chunk_range). */
dc_status dc_fwd_chunk(dc_model *m, const int32_t *tokens, int64_t n_tokens, const dc_chunking *ch, int64_t i,
                       float *logits, dc_err *err);
/* The same, also recording the routing decisions (routing filled as by dc_forward; free it with
 * dc_routing_free, also after a failure). */
dc_status dc_fwd_chunk_routed(dc_model *m, const int32_t *tokens, int64_t n_tokens, const dc_chunking *ch, int64_t i,
                              float *logits, dc_routing *routing, dc_err *err);

/* Monotonic wall clock in seconds. */
double dc_fwd_now(void);

/* ---- base-logits file (docs/forward.md) ---------------------------------------------------- */

#define DC_BASE_MAGIC "DCKLBASE"
#define DC_BASE_VERSION 1u
#define DC_BASE_HEADER_BYTES 72u

typedef struct dc_base_file {
    dc_map map;
    uint32_t top_k, flags;
    int64_t vocab, n_tokens, ctx, n_positions;
    bool llama_compat;
    int32_t bos;
    const uint8_t *tokens_raw;  /* int32 LE [n_tokens] */
    const uint8_t *records;     /* n_positions * record_bytes */
    uint64_t record_bytes;      /* 8 + 8 * top_k */
} dc_base_file;

/* Validates header, sizes, hash, ids and values. */
dc_status dc_base_open(const char *path, dc_base_file *f, dc_err *err);
void dc_base_close(dc_base_file *f);
/* Copies the tokens out (malloc'd). */
dc_status dc_base_tokens(const dc_base_file *f, int32_t **ids, dc_err *err);
/* Decodes record i into rec (ids/logp must hold top_k entries). */
void dc_base_record(const dc_base_file *f, int64_t i, dc_topk_rec *rec);

typedef struct dc_base_writer {
    dc_outfile out;
    uint32_t top_k;
    int64_t n_positions, written;
    uint64_t rec_off;
    uint8_t *buf;
} dc_base_writer;

/* Creates the file (appears under its name only on commit) and writes the header and tokens. */
dc_status dc_base_create(dc_base_writer *w, const char *path, bool force, uint32_t top_k, int64_t vocab,
                         const int32_t *tokens, int64_t n_tokens, const dc_chunking *chunks, dc_err *err);
dc_status dc_base_append(dc_base_writer *w, const dc_topk_rec *rec, dc_err *err);
dc_status dc_base_commit(dc_base_writer *w, dc_err *err);
void dc_base_abort(dc_base_writer *w);

#endif
