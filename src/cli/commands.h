#pragma once
// Command groups that live in files of their own (src/cli/<group>_commands.cpp); commands.cpp
// registers them beside its own.
namespace CLI {
class App;
}

namespace histocnn::cli {

void add_pipeline_commands(CLI::App& app);  // histocnn pipeline run|compile|component|runs|lineage
void add_slide_commands(CLI::App& app);     // histocnn slide predict

}  // namespace histocnn::cli
