// The TCP bootstrap's job identity (TcpBootstrapOptions::job_token), shared by the bootstrap and
// its recovery (bootstrap_recovery.cpp). Host code only.
#pragma once

#include <string>

#include "epcomm/bootstrap.hpp"

namespace epcomm {

// `o.job_token` when set, else EPCOMM_JOB_TOKEN, else derived from what a torchrun-style launch
// shares (TcpBootstrapOptions::job_token says how).
std::string resolve_job_token(const TcpBootstrapOptions& o);

}  // namespace epcomm
