# MicroPython user C module for CMake-based ports (esp32 with ESP-IDF, rp2):
#   make USER_C_MODULES=<repo>/native_modules/usermod/micropython.cmake
# (make-based ports: USER_C_MODULES=<repo>/native_modules, see micropython.mk)
# Same sources as micropython.mk; registers the built-in module `mpyml_engine`.
add_library(usermod_mpyml INTERFACE)

set(MPYML_DIR ${CMAKE_CURRENT_LIST_DIR}/..)
file(GLOB MPYML_OPS_SRC ${MPYML_DIR}/engine/ops/*.c)
file(GLOB MPYML_PRE_SRC ${MPYML_DIR}/engine/pre/*.c)
file(GLOB MPYML_SIGN_SRC ${MPYML_DIR}/engine/sign/*.c)

target_sources(usermod_mpyml INTERFACE
    ${MPYML_DIR}/natmod/mpyml_natmod.c
    ${MPYML_DIR}/engine/mpyml_engine.c
    ${MPYML_OPS_SRC}
    ${MPYML_PRE_SRC}
    ${MPYML_SIGN_SRC}
)

target_include_directories(usermod_mpyml INTERFACE ${MPYML_DIR}/engine)
target_compile_options(usermod_mpyml INTERFACE -O2 -fno-strict-aliasing)

target_link_libraries(usermod INTERFACE usermod_mpyml)
