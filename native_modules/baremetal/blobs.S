/*
 * blobs.S - links one job into the image: the packed model and the input samples (.incbin, placed in
 * flash as .rodata, used in place), and the number of invokes per sample.
 * Assembled per job:  -DMODEL_FILE='"m.mpk"' -DINPUT_FILE='"in.bin"' -DREPEAT=n
 */
#ifndef REPEAT
#define REPEAT 1
#endif

    .section .rodata.bm_model, "a"
    .balign 16
    .global bm_model, bm_model_end
bm_model:
    .incbin MODEL_FILE
bm_model_end:

    .section .rodata.bm_input, "a"
    .balign 16
    .global bm_input, bm_input_end
bm_input:
    .incbin INPUT_FILE
bm_input_end:

    .section .rodata.bm_repeat, "a"
    .balign 4
    .global bm_repeat
bm_repeat:
    .word REPEAT
