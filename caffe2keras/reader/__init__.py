"""Reading Caffe files into the IR: text and binary formats, old-format upgrades, inputs, phases."""
