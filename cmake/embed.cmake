# Helpers of the build steps that embed text files into the binary as C strings
# (src/app/embed_html.cmake, src/io/redis/embed_lua.cmake), included by them.

# The C string literal of `text`, one source line per text line, indented by four spaces.
function(c_string text out)
    string(REPLACE "\\" "\\\\" text "${text}")
    string(REPLACE "\"" "\\\"" text "${text}")
    string(REPLACE "?" "\\?" text "${text}")
    string(REPLACE "\n" "\\n\"\n    \"" text "${text}")
    set(${out} "    \"${text}\"" PARENT_SCOPE)
endfunction()

# Write `body` to `path` only when it changed, so that an unchanged build does not recompile.
function(write_if_changed path body)
    set(old "")
    if(EXISTS ${path})
        file(READ ${path} old)
    endif()
    if(NOT old STREQUAL body)
        file(WRITE ${path} "${body}")
    endif()
endfunction()
