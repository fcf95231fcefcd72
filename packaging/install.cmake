# Install-time part of `cmake --install` (CMakeLists.txt sets the TINYMQ_* variables just before).
# It runs at install time rather than configure time so that the paths written into the unit are
# those of this install: `--prefix` may differ from the configured CMAKE_INSTALL_PREFIX, and
# DESTDIR (a staging directory) must not appear in them. file(INSTALL) adds DESTDIR itself.

# `dir` as an absolute path of the installed system: relative ones are under the prefix.
function(tinymq_install_path out dir)
  if(IS_ABSOLUTE "${dir}")
    set(${out} "${dir}" PARENT_SCOPE)
  else()
    set(${out} "${CMAKE_INSTALL_PREFIX}/${dir}" PARENT_SCOPE)
  endif()
endfunction()

tinymq_install_path(TINYMQ_BINDIR "${TINYMQ_INSTALL_BINDIR}")
tinymq_install_path(TINYMQ_CONFDIR "${TINYMQ_INSTALL_SYSCONFDIR}/tinymq")
tinymq_install_path(TINYMQ_DOCDIR "${TINYMQ_INSTALL_DOCDIR}")

# The example, which sets every key to its default, becomes the configuration file, but only when
# there is none: an upgrade must not overwrite what the operator wrote. The new example is always
# in the doc directory, to compare.
set(_tinymq_config "$ENV{DESTDIR}${TINYMQ_CONFDIR}/tinymq.toml")
if(EXISTS "${_tinymq_config}")
  message(STATUS "Keeping: ${_tinymq_config} (the example of this version: "
                 "$ENV{DESTDIR}${TINYMQ_DOCDIR}/tinymq.example.toml)")
else()
  file(INSTALL DESTINATION "${TINYMQ_CONFDIR}" TYPE FILE
       FILES "${TINYMQ_SOURCE_DIR}/tinymq.example.toml" RENAME tinymq.toml)
endif()

# The systemd unit, its ExecStart naming the installed binary and configuration.
configure_file("${TINYMQ_SOURCE_DIR}/packaging/tinymq.service.in"
               "${TINYMQ_BINARY_DIR}/packaging/tinymq.service" @ONLY)
file(INSTALL DESTINATION "${CMAKE_INSTALL_PREFIX}/lib/systemd/system" TYPE FILE
     FILES "${TINYMQ_BINARY_DIR}/packaging/tinymq.service")
