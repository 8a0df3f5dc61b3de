// A leader lease: at most one process of a deployment does some work at a time (the
// fulfilment saga), and another takes over when the holder dies. Storage-neutral; the
// PostgreSQL store implements it with a session-level advisory lock. (The embedded store
// needs none: one process holds it at all.)
//
// What a lease promises is efficiency, not safety: a holder learns that it lost its lease
// only when it next calls hold(), so for a moment two processes may both believe they
// hold it. Work done under a lease must stay correct if done twice (the saga's commands
// carry derived event ids for exactly that).
#pragma once

#include "core/result.h"

namespace orderflow::es {

class LeaderLease {
 public:
  virtual ~LeaderLease() = default;
  // Takes the lease if it is free, or confirms that this process still holds it; answers
  // whether it holds the lease now. A holder that lost it is told so (false) before a
  // later call may take it again. An error (the store is unreachable) means: not held.
  // Called periodically by one thread.
  virtual Result<bool> hold() = 0;
  // Gives the lease up, if held (also on destruction).
  virtual void release() = 0;
};

}  // namespace orderflow::es
