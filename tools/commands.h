// The subcommands of `singlora`; each lives in its own tools/cmd_<name>.c.
#pragma once

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);   // argv[0] is the command name
} command;

extern const command COMMANDS[];
extern const int N_COMMANDS;

// `singlora <cmd> <target> ...` (forward, backward): runs the target that argv[1] names with
// argv + 1, or lists the targets (--help; a missing target is an error, exit 1).
int run_target(const char *cmd, const command *targets, int n_targets, int argc, char **argv);


int cmd_inspect(int argc, char **argv);
int cmd_randn(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_init(int argc, char **argv);
int cmd_sample(int argc, char **argv);
int cmd_adapter(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_backward(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_world(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_pretrain(int argc, char **argv);

// targets of `singlora forward` (tools/forward_<target>.c); argv[0] is the target name
int forward_text_main(int argc, char **argv);
int forward_txt2img_main(int argc, char **argv);
int forward_unet_main(int argc, char **argv);
int forward_vae_encode_main(int argc, char **argv);
int forward_vae_decode_main(int argc, char **argv);
int forward_dino_main(int argc, char **argv);         // tools/forward_eval.c
int forward_clip_image_main(int argc, char **argv);
int forward_clip_text_main(int argc, char **argv);

// targets of `singlora backward` (tools/backward_<target>.c)
int backward_unet_main(int argc, char **argv);
