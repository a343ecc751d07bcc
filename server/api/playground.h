#ifndef SEGSERVE_SERVER_API_PLAYGROUND_H_
#define SEGSERVE_SERVER_API_PLAYGROUND_H_

#include <optional>

#include "server/http/http_server.h"

namespace segserve {

// The playground: one page (server/api/playground/) that lists the models,
// sends an image to the image endpoint and draws the mask over it, using
// the public REST endpoints only. Its files are compiled into the binary.
//   GET /  and  GET /playground/{index.html,app.js,app.css}
// The answer to `request` when its path is the playground's (405 for a
// method other than GET or HEAD, 404 for a file it does not have); nullopt
// for any other path.
std::optional<HttpResponse> PlaygroundResponse(const HttpRequest& request);

}  // namespace segserve

#endif  // SEGSERVE_SERVER_API_PLAYGROUND_H_
