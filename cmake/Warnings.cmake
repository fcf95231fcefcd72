# Warning set from STYLE.md §2.6, applied to every tinymq target through tinymq_warnings.
add_library(tinymq_warnings INTERFACE)
target_compile_options(tinymq_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wold-style-cast -Wnon-virtual-dtor
  -Woverloaded-virtual -Wimplicit-fallthrough -Wnull-dereference)
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  target_compile_options(tinymq_warnings INTERFACE -Wthread-safety)
endif()
if(TINYMQ_WERROR)
  target_compile_options(tinymq_warnings INTERFACE -Werror)
endif()

# Adds a layer library from every .cc in the current source directory.
function(tinymq_layer_library name)
  file(GLOB _srcs CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/*.cc)
  add_library(${name} STATIC ${_srcs})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PRIVATE tinymq_warnings)
endfunction()
