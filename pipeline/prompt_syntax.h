// A1111's prompt syntax (also what ComfyUI and stable-diffusion.cpp users type):
//   emphasis   (word) = weight x1.1, [word] = /1.1, (word:1.3) = x1.3, nested ones multiply;
//              \( \) \[ \] \\ are the literal characters; unbalanced brackets close at the end
//   BREAK      (capitals, a word of its own) ends the current 75-token chunk
//   <lora:NAME:W> a LoRA file to apply at weight W (<lora:NAME> = 1; A1111's third field, the
//              UNet's own weight, wins over W when given), removed from the text
// The parse is A1111's parse_prompt_attention, merge of equal-weight neighbours included, so a
// prompt gets the same token weights as there.
#pragma once

typedef struct {
    char *text;
    double weight;     // A1111 multiplies in Python floats (double); a BREAK has weight -1
} prompt_segment;

typedef struct {
    prompt_segment *seg;
    int n;             // >= 1 (the empty prompt is one empty segment of weight 1)
} prompt_attention;

// 0, or -1 with sl_error for a weight that is not a number ("(a:1.2.3)").
int prompt_parse_attention(const char *text, prompt_attention *out);
void prompt_attention_free(prompt_attention *a);
// A1111's test: text "BREAK" with weight exactly -1 (inside brackets a BREAK's weight is
// multiplied too, and A1111 then reads it as the word; so does this).
int prompt_segment_is_break(const prompt_segment *s);

typedef struct {
    char *name;        // the file's name without .safetensors
    float weight;
} prompt_lora;

// Takes A1111's <lora:...> tags out of prompt: *text (malloc'd) is the prompt without them,
// *tags (malloc'd, NULL when none) the *n tags in order. Other <kind:...> tags stay in the
// text. -1 with sl_error naming the tag when a weight is not a number.
int prompt_take_loras(const char *prompt, char **text, prompt_lora **tags, int *n);
void prompt_loras_free(prompt_lora *tags, int n);
