#pragma once
// Included first in every test file (as the precompiled header). LibTorch brings glog, whose
// CHECK macro would otherwise replace Catch2's.
#include <torch/torch.h>
#undef CHECK
#include <catch2/catch.hpp>
