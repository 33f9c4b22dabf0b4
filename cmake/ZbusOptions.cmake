# SPDX-License-Identifier: MIT
# Warnings and sanitizers shared by every target of the project.

add_compile_options(-Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes
	-Wshadow -Wno-unused-parameter -mcx16)
if(ZBUS_WERROR)
	add_compile_options(-Werror)
endif()

if(ZBUS_SANITIZER STREQUAL "address")
	set(_zb_san "address,undefined")
elseif(ZBUS_SANITIZER STREQUAL "undefined")
	set(_zb_san "undefined")
elseif(ZBUS_SANITIZER STREQUAL "thread")
	set(_zb_san "thread")
	# gcc's TSan ignores atomic_thread_fence; every shared access here is
	# an atomic load or store anyway, so TSan still sees each edge.
	add_compile_options(-Wno-tsan)
elseif(NOT ZBUS_SANITIZER STREQUAL "none")
	message(FATAL_ERROR "ZBUS_SANITIZER must be none|address|undefined|thread")
endif()
if(DEFINED _zb_san)
	add_compile_options(-fsanitize=${_zb_san} -fno-omit-frame-pointer
		-fno-sanitize-recover=undefined)
	add_link_options(-fsanitize=${_zb_san})
endif()

# Fuzz builds instrument every object for coverage (the library is what is
# fuzzed); only the fuzz targets link libFuzzer's main.
if(ZBUS_BUILD_FUZZ)
	add_compile_options(-fsanitize=fuzzer-no-link)
endif()
