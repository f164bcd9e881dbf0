#include "bindings.h"

#include "histocnn/serve/server.h"
#include "histocnn/serve/versions.h"

#include <pybind11/stl.h>
#include <pybind11/stl/filesystem.h>

namespace py = pybind11;

namespace histocnn::bindings {

void init_serve(py::module_& root) {
  auto m = root.def_submodule("serve", "TensorFlow Serving's REST API over model versions");
  py::class_<serve::Server>(m, "Server")
      .def(py::init([](const std::filesystem::path& model_base_path, const std::string& model_name,
                       const std::filesystem::path& model_config_file, const std::string& host, int port,
                       bool enable_batching, int64_t max_batch_size, int64_t batch_timeout_micros,
                       int num_batch_threads, int64_t max_enqueued_batches, double file_system_poll_wait_seconds,
                       int64_t max_body_bytes, int64_t max_instances, int64_t max_image_pixels,
                       const std::string& api_key, const std::string& device, bool access_log) {
             serve::ServerOptions o;
             o.model_base_path = model_base_path;
             o.model_name = model_name;
             o.model_config_file = model_config_file;
             o.host = host;
             o.port = port;
             if (enable_batching) {
               serve::BatchingOptions b;
               b.max_batch_size = max_batch_size;
               b.batch_timeout_micros = batch_timeout_micros;
               b.num_batch_threads = num_batch_threads;
               b.max_enqueued_batches = max_enqueued_batches;
               o.batching = b;
             }
             o.file_system_poll_wait_seconds = file_system_poll_wait_seconds;
             o.limits.max_body_bytes = max_body_bytes;
             o.limits.max_instances = max_instances;
             o.limits.max_image_pixels = max_image_pixels;
             o.api_key = api_key;
             o.device = device;
             o.access_log = access_log;
             return std::make_unique<serve::Server>(o);
           }),
           py::arg("model_base_path") = std::filesystem::path(), py::arg("model_name") = "default",
           py::arg("model_config_file") = std::filesystem::path(), py::arg("host") = "127.0.0.1",
           py::arg("port") = 0, py::arg("enable_batching") = false, py::arg("max_batch_size") = 32,
           py::arg("batch_timeout_micros") = 2000, py::arg("num_batch_threads") = 1,
           py::arg("max_enqueued_batches") = 64, py::arg("file_system_poll_wait_seconds") = 1.0,
           py::arg("max_body_bytes") = int64_t{64} << 20, py::arg("max_instances") = 1024,
           py::arg("max_image_pixels") = int64_t{4096} * 4096, py::arg("api_key") = "", py::arg("device") = "auto",
           py::arg("access_log") = false)
      .def("start", &serve::Server::start, py::call_guard<py::gil_scoped_release>())
      .def("stop", &serve::Server::stop, py::call_guard<py::gil_scoped_release>())
      .def_property_readonly("port", &serve::Server::port)
      .def_property_readonly("url", &serve::Server::url);

  m.def("push_bundle", &serve::push_bundle, py::arg("source"), py::arg("base_path"),
        "Copies a run's model into the next version folder of a serving base path; returns the version.");
  m.def("pin_version", &serve::pin_version, py::arg("base_path"), py::arg("version"));
  m.def("unpin", &serve::unpin, py::arg("base_path"));
  m.def("set_label", &serve::set_label, py::arg("base_path"), py::arg("label"), py::arg("version"));
  m.def("format_versions", [](const std::filesystem::path& base) {
    return serve::format_versions(serve::list_served_versions(base));
  }, py::arg("base_path"));
}

}  // namespace histocnn::bindings
