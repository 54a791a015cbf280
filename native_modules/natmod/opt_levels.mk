# Per-file optimisation levels of the engine, shared by the natmod build (natmod/Makefile) and the bare-metal
# build (baremetal/Makefile, whose QEMU instruction counts must reflect the natmod). Issue 11: natmod size.
# The hot kernels (the inner loops of the reference models) are -O2; every other engine file (loader, op table,
# shape ops, LSTM, SVDF, softmax, reduce, elementwise, transpose conv, pre/*, sign/*) is -Os: they cost a few
# percent of invoke time and hold most of the code. A new kernel file matching a pattern is -O2 too.
# On Cortex-M4/M7 (natmod armv7emsp/armv7emdp, bare-metal m4/m7) the convolutions run in the DSP kernel files:
# the generic conv2d.c / depthwise_conv2d.c (dispatch, portable and SSE2 loops) and sparse_fc.c are cold there;
# add.c, sparse_conv.c and the in-place conv kernels are -Os there too, for the size limit (ResNet-8 M4
# +0.4% instructions from add.c, VWW +0.9% from its sparse layer, the in-place kernels only run in
# `pack --max-ram` plans).
# The includer sets MPYML_DSP = 1 for those targets before including. Paths are relative to
# native_modules/engine/. The environment may override MPYML_OPT_HOT / MPYML_OPT_COLD (experiments).
ifeq ($(MPYML_DSP),1)
MPYML_HOT_SRC := ops/conv2d_dsp% ops/depthwise_dm% ops/fully_connected% ops/pooling%
else
MPYML_HOT_SRC := ops/conv2d% ops/depthwise% ops/fully_connected% ops/add% ops/pooling% ops/sparse%
endif
MPYML_OPT_HOT ?= -O2
MPYML_OPT_COLD ?= -Os
