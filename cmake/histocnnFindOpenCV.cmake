# OpenCV's CMake package comes only with Debian's full libopencv-dev; the per-module -dev packages
# (core, imgproc, imgcodecs) that histocnn needs ship headers and libraries only. Use the package
# when present, otherwise define the same imported targets by hand.
find_package(OpenCV QUIET COMPONENTS core imgproc imgcodecs)
if(NOT OpenCV_FOUND)
  find_path(HISTOCNN_OPENCV_INCLUDE_DIR opencv2/core.hpp PATH_SUFFIXES opencv4 REQUIRED)
  foreach(module core imgproc imgcodecs)
    if(NOT TARGET opencv_${module})
      find_library(HISTOCNN_OPENCV_${module}_LIBRARY opencv_${module} REQUIRED)
      add_library(opencv_${module} SHARED IMPORTED)
      set_target_properties(opencv_${module} PROPERTIES
        IMPORTED_LOCATION ${HISTOCNN_OPENCV_${module}_LIBRARY}
        INTERFACE_INCLUDE_DIRECTORIES ${HISTOCNN_OPENCV_INCLUDE_DIR})
    endif()
  endforeach()
endif()
