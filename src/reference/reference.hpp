// The reference's declarations are public now: epcomm/reference.hpp. This name stays for the code
// in the tree that still includes it.
#pragma once

#include "epcomm/reference.hpp"
