/* Graph rewrites. Each takes the graph IR and returns it changed in place. */
#ifndef QD_PASSES_PASSES_H
#define QD_PASSES_PASSES_H

#include "ir/graph.h"

#endif
