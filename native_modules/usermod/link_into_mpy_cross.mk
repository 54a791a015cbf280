# Used only by tests/test_firmware_module.py: mpy-cross's Makefile scans user modules for qstrs and
# module registrations but links only the core. This adds the user-module objects to its link (with
# the generated-header ordering py objects get), turning an mpy-cross build into a real firmware-mode
# compile + link of the binding, with qstr generation and MP_REGISTER_MODULE processing.
MPYML_USER_OBJ := $(addprefix $(BUILD)/, $(SRC_USERMOD_PATHFIX_C:.c=.o))
$(BUILD)/$(PROG): $(MPYML_USER_OBJ)
$(MPYML_USER_OBJ): | $(HEADER_BUILD)/qstrdefs.generated.h $(HEADER_BUILD)/mpversion.h $(HEADER_BUILD)/moduledefs.h \
    $(HEADER_BUILD)/root_pointers.h
MPYML_USER_DIRS := $(sort $(dir $(MPYML_USER_OBJ)))
$(MPYML_USER_OBJ): | $(MPYML_USER_DIRS)
$(MPYML_USER_DIRS):
	mkdir -p $@
