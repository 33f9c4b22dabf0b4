# SPDX-License-Identifier: MIT
# protobuf-c code is generated from each .proto at build time, never
# committed. One helper, so that every .proto of the project is built the
# same way.
find_program(PROTOC_C protoc-c REQUIRED)

# zbus_protoc_c(PROTO OUT_C) - generate PROTO, a file of the current source
# directory, into the current binary directory, and set OUT_C to the .pb-c.c
# to compile. Code that includes the .pb-c.h needs that binary directory
# among its include directories.
function(zbus_protoc_c proto out_c)
	get_filename_component(_base ${proto} NAME_WE)
	set(_src ${CMAKE_CURRENT_SOURCE_DIR}/${proto})
	set(_c ${CMAKE_CURRENT_BINARY_DIR}/${_base}.pb-c.c)
	set(_h ${CMAKE_CURRENT_BINARY_DIR}/${_base}.pb-c.h)
	add_custom_command(OUTPUT ${_c} ${_h}
		COMMAND ${PROTOC_C} --c_out=${CMAKE_CURRENT_BINARY_DIR}
			-I${CMAKE_CURRENT_SOURCE_DIR} ${_src}
		DEPENDS ${_src}
		COMMENT "protoc-c ${proto}")
	# Generated code: our warnings are not its author's. A source file
	# property belongs to the directory that calls this, as it should.
	set_source_files_properties(${_c} PROPERTIES COMPILE_OPTIONS
		"-Wno-missing-prototypes;-Wno-unused-parameter")
	set(${out_c} ${_c} PARENT_SCOPE)
endfunction()
