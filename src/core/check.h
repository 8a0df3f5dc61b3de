// Invariants crash loudly: a broken invariant is a bug, not a return value.
#pragma once

namespace orderflow::detail {
[[noreturn]] void check_failed(const char* expr, const char* msg, const char* file, int line);
}

#define OF_CHECK(cond, msg)                                                   \
  do {                                                                        \
    if (!(cond)) [[unlikely]]                                                 \
      ::orderflow::detail::check_failed(#cond, (msg), __FILE__, __LINE__);    \
  } while (0)
