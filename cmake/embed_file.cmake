# Turns a file into a C source holding its bytes (NUL-terminated) and size:
#   cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed_file.cmake
# defines `const unsigned char NAME[]` and `const size_t NAME_size`.
# Plain CMake, so the build needs no xxd.
if(NOT IN OR NOT OUT OR NOT NAME)
  message(FATAL_ERROR "embed_file.cmake: set IN, OUT and NAME")
endif()
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR size "${digits} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Sixteen bytes a line keeps the generated file readable in a debugger.
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
get_filename_component(in_name "${IN}" NAME)
file(WRITE "${OUT}.tmp"
  "/* Generated from ${in_name} by cmake/embed_file.cmake: do not edit. */\n"
  "#include <stddef.h>\n"
  "extern const unsigned char ${NAME}[];\n"
  "extern const size_t ${NAME}_size;\n"
  "const unsigned char ${NAME}[] = {\n${bytes}0x00};\n"
  "const size_t ${NAME}_size = ${size};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
