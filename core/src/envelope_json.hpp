// The JSON envelope written straight to bytes. Building a Json tree only to
// serialize it costs some fifty allocations per message (every member is a
// map node, every id a heap string); on the act path that was a third of
// the work. These writers put the fixed members (trace, request) down
// directly and hand only the caller's values (pattern, meta, delegate,
// result, error) to the codec.
//
// Only for the "json" codec: the output is byte for byte what
// codec.encode(encode_request(...)) / codec.encode(encode_reply(...)) give
// (members in the order of the Json object's map, numbers and strings as
// the json codec writes them); envelope_json_test holds them to that.
#pragma once

#include <string>

#include "envelope.hpp"
#include "switchboard/codec.hpp"

namespace switchboard {

// Whether the writers below may stand in for `codec`.
bool writes_json_envelopes(const Codec& codec);

// codec.encode(encode_request(r)), without the tree.
std::string write_json_request(const RequestEnvelope& r, const Codec& codec);
// The same, from the parts an act keeps (no RequestEnvelope copy needed).
std::string write_json_request(const Json& pattern, const Json& meta, const Json& delegate,
                               const Trace& trace, const std::string& request_id,
                               const std::string& type, int depth, const Codec& codec);

// codec.encode(encode_reply(meta, trace, request, result, error)), without the tree.
std::string write_json_reply(const Json& meta, const Trace& trace, const RequestEnvelope& request,
                             const Json& result, const Json& error, const Codec& codec);

}  // namespace switchboard
