#pragma once
// The library version and the LibTorch it was built against.
//
//   std::cout << histocnn::version() << " (LibTorch " << histocnn::torch_version() << ")\n";
#include <string>

namespace histocnn {

const char* version();
/// The LibTorch version the library was compiled against, e.g. "1.13.1".
std::string torch_version();

}  // namespace histocnn
