#include "histocnn/cli.h"

int main(int argc, char** argv) { return histocnn::cli::run(argc, argv); }
