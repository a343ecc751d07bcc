#ifndef SEGSERVE_SERVER_API_EMBEDDED_FILE_H_
#define SEGSERVE_SERVER_API_EMBEDDED_FILE_H_

#include <cstddef>

namespace segserve {

// A file compiled into the binary (cmake/embed_files.cmake); arrays of them
// end with an entry whose name is null.
struct EmbeddedFile {
  const char* name;
  const unsigned char* data;
  size_t size;
};

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_EMBEDDED_FILE_H_
