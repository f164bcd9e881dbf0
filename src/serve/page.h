#pragma once
// The upload page (src/serve/web/index.html), embedded at build time.
namespace histocnn::serve {
const char* upload_page_html();
}  // namespace histocnn::serve
