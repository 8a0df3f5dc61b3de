// The read side's documents: an entity as docs/api.md §6 shows it (JSON text). The projections
// store them, time travel and `verify` render folds of the store with the same functions.
#pragma once

#include <string>

#include "domain/account.h"
#include "domain/order.h"
#include "domain/product.h"
#include "es/event.h"

namespace orderflow::app::projections {

std::string order_document(const domain::order::State& s, es::StreamVersion version);
std::string product_document(const domain::product::State& s, es::StreamVersion version);
std::string account_document(const domain::account::State& s, es::StreamVersion version);

}  // namespace orderflow::app::projections
