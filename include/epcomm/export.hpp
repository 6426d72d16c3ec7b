// Symbol visibility: the shared library exports only what is marked EPCOMM_API.
#pragma once

#if defined(_WIN32)
#define EPCOMM_API
#else
#define EPCOMM_API __attribute__((visibility("default")))
#endif
