# MicroPython user C module for make-based ports (stm32, unix, ...):
#   make USER_C_MODULES=<repo>/native_modules
# (CMake ports such as esp32 and rp2: USER_C_MODULES=<repo>/native_modules/usermod/micropython.cmake)
# Builds the same engine core and binding as the native module (mpyml_natmod.c compiles in both modes)
# and registers the built-in module `mpyml_engine`. Paths stay under $(USER_C_MODULES) on purpose:
# py.mk maps them into the build directory by stripping that prefix.
MPYML_DIR := $(USERMOD_DIR)/..

SRC_USERMOD_C += $(MPYML_DIR)/natmod/mpyml_natmod.c
SRC_USERMOD_C += $(MPYML_DIR)/engine/mpyml_engine.c
SRC_USERMOD_C += $(wildcard $(MPYML_DIR)/engine/ops/*.c)
SRC_USERMOD_C += $(wildcard $(MPYML_DIR)/engine/pre/*.c)
SRC_USERMOD_C += $(wildcard $(MPYML_DIR)/engine/sign/*.c)

CFLAGS_USERMOD += -I$(MPYML_DIR)/engine -O2 -fno-strict-aliasing
