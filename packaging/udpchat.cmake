# packaging/udpchat.cmake - install layout and the Debian package (CPack).
# Included from the top-level CMakeLists.txt after the udpchat target.
#
#   cmake --install build [--prefix DIR]   binary, man page, systemd unit
#   cpack --config build/CPackConfig.cmake  udpchat_<version>_<arch>.deb
#
# Paths follow GNUInstallDirs: bin/udpchat, share/man/man1/udpchat.1 and
# lib/systemd/system/udpchat-server.service under the prefix (/usr in the
# .deb; Debian 12's merged /usr makes that /lib/systemd/system too).
include(GNUInstallDirs)

set(UDPC_UNIT_DIR lib/systemd/system CACHE STRING
    "where the systemd unit is installed, relative to the prefix")

install(FILES ${CMAKE_SOURCE_DIR}/man/udpchat.1
        DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES ${CMAKE_CURRENT_LIST_DIR}/udpchat-server.service
        DESTINATION ${UDPC_UNIT_DIR})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME udpchat)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "udpchat")
set(CPACK_PACKAGE_CONTACT "udpchat maintainers <udpchat@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "chat over UDP: server and terminal client")
set(CPACK_PACKAGE_DESCRIPTION
    "udpchat is a chat system over UDP. One binary is the server (udpchat -s),
which registers clients and stores messages for offline users, or a client
(udpchat -c) that chats directly with its peers from a terminal, with line
editing, history and completion. Includes the udpchat-server systemd unit.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON) # dpkg-shlibdeps: libc6, libedit2...
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_CURRENT_LIST_DIR}/debian/postinst
    ${CMAKE_CURRENT_LIST_DIR}/debian/prerm
    ${CMAKE_CURRENT_LIST_DIR}/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION TRUE)
set(CPACK_STRIP_FILES TRUE)
include(CPack)
