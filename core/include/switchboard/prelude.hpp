// Included first by every header that pulls in Boost.Asio.
//
// Boost 1.74 with GCC 12 in C++20 mode: boost/asio/awaitable.hpp uses
// std::exchange without including <utility>, so <utility> must come first.
#pragma once

#include <utility>

#include <boost/asio.hpp>

namespace switchboard {
namespace asio = boost::asio;
}  // namespace switchboard
