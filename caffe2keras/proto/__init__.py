"""Protocol buffer bindings generated from proto/caffe.proto."""
