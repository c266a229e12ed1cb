/* Byte-level BPE tokenizer compatible with Hugging Face `tokenizers` for DeepSeek-V3-style
 * tokenizer.json files.
 *
 * Supported tokenizer.json features (anything else is DC_ERR_UNSUPPORTED, naming the feature):
 *   model            BPE (vocab + merges as "a b" strings or ["a", "b"] pairs), unk_token,
 *                    fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix,
 *                    end_of_word_suffix; dropout must be null/0.
 *   added_tokens     special and non-special, lstrip/rstrip/single_word/normalized, matched in the
 *                    raw text leftmost-longest before pre-tokenization (non-normalized tokens first,
 *                    then normalized ones in the remaining pieces), ids assigned like HF does.
 *   normalizer       null or a (nested) empty "Sequence".
 *   pre_tokenizer    "Split" (Regex or String pattern, all behaviors, invert) steps in a "Sequence"
 *                    ending in "ByteLevel" (add_prefix_space, use_regex = GPT-2's pattern), or a
 *                    plain "ByteLevel". Oniguruma regex syntax is translated to PCRE2 (\s is
 *                    Unicode White_Space, so U+0085 is whitespace and U+FEFF is not).
 *   post_processor   null, "ByteLevel", "TemplateProcessing" (single = specials* $A specials*),
 *                    or a "Sequence" of those.
 *   decoder          "ByteLevel" (alone or as the only step of a "Sequence").
 *
 * Special tokens on encode (add_special = true): if tokenizer_config.json has add_bos_token or
 * add_eos_token, those decide (as transformers' Llama-class tokenizers do); otherwise the
 * TemplateProcessing post-processor's leading/trailing special tokens are used, if any.
 *
 * A loaded dc_tok is immutable: encode/decode may run concurrently from several threads. */
#ifndef DC_TOKENIZER_H
#define DC_TOKENIZER_H

#include "dc_common.h"

typedef struct dc_tok dc_tok;

/* Loads DIR/tokenizer.json and, if present, DIR/tokenizer_config.json. DIR may also be the path
 * of a tokenizer.json file itself (the config is then looked up beside it). */
dc_status dc_tok_load(const char *dir, dc_tok **out, dc_err *err);

/* Loads from memory. json/json_len: tokenizer.json contents; cfg may be NULL (no config).
 * json_name/cfg_name are used in error messages. */
dc_status dc_tok_load_mem(const char *json, size_t json_len, const char *json_name,
                          const char *cfg, size_t cfg_len, const char *cfg_name,
                          dc_tok **out, dc_err *err);

/* Encodes len bytes of UTF-8 text (NUL bytes allowed). *ids is malloc'd (caller frees; non-NULL
 * even when *n == 0). Invalid UTF-8 -> DC_ERR_INPUT naming the byte offset. */
dc_status dc_tok_encode(const dc_tok *t, const char *text, size_t len, bool add_special,
                        int32_t **ids, size_t *n, dc_err *err);

/* Decodes ids to text like HF's ByteLevel decoder (invalid UTF-8 in the byte stream becomes
 * U+FFFD, as String::from_utf8_lossy does). *text is malloc'd and NUL-terminated, *len excludes
 * the NUL (len may be NULL). skip_special drops special added tokens. An id that is not in the
 * vocabulary is DC_ERR_INPUT. */
dc_status dc_tok_decode(const dc_tok *t, const int32_t *ids, size_t n, bool skip_special,
                        char **text, size_t *len, dc_err *err);

/* BOS/EOS ids (from tokenizer_config.json bos_token/eos_token, else from a TemplateProcessing
 * post-processor), or -1 if unknown. */
int32_t dc_tok_bos(const dc_tok *t);
int32_t dc_tok_eos(const dc_tok *t);
/* Whether encode(add_special = true) prepends BOS / appends EOS. */
bool dc_tok_adds_bos(const dc_tok *t);
bool dc_tok_adds_eos(const dc_tok *t);
/* Highest token id + 1 over the model vocabulary and the added tokens (128815 for DeepSeek-V3;
 * the model's embedding may be larger, e.g. 129280). */
size_t dc_tok_vocab_size(const dc_tok *t);
/* Number of merges in the BPE model. */
size_t dc_tok_n_merges(const dc_tok *t);
/* The raw token string of id (byte-level form, not NUL-terminated), or NULL if id is unused. */
const char *dc_tok_token(const dc_tok *t, int32_t id, size_t *len);
/* The id of a token string (added tokens first, then the model vocabulary), or -1. */
int32_t dc_tok_token_id(const dc_tok *t, const char *s, size_t len);
void dc_tok_free(dc_tok *t);

/* Writes DIR/tokenizer.json and DIR/tokenizer_config.json (DIR is created if missing): a small
 * byte-level BPE tokenizer with the DeepSeek-V3 normalizer/pre-tokenizer/post-processor/decoder,
 * the 256 byte tokens, merges learned by a tiny deterministic trainer from an embedded English and
 * code text (seed varies the text's weighting), <｜begin▁of▁sentence｜> at bos_id and
 * <｜end▁of▁sentence｜> at eos_id, and placeholder special tokens for unused ids below them.
 * The vocabulary never exceeds vocab_size entries (fewer if the text runs out of pairs).
 * vocab_size must be >= 258; bos_id and eos_id distinct and in [0, vocab_size).
 * Same arguments -> same bytes. */
dc_status dc_tok_write_synthetic(const char *dir, int vocab_size, int bos_id, int eos_id,
                                 uint64_t seed, dc_err *err);

#endif
