#pragma once
// The `histocnn` command line as a function, so that `python -m histocnn` runs the very same
// interface as the executable.
//
//   return histocnn::cli::run(argc, argv);    // "histocnn train --data ..." -> exit status
namespace histocnn::cli {

/// Parses the arguments (argv[0] is the program name), runs the command, prints errors on stderr
/// and returns the exit status: 0 success, 1 failure, 2 bad input.
int run(int argc, const char* const* argv);

}  // namespace histocnn::cli
