{
  "targets": [
    {
      "target_name": "senv_pcsc",
      "sources": ["senv_pcsc.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # SWALLOW_UNTHROWABLE: a job that settles while a worker's environment shuts down (a wait its
      # exit cancelled) cannot reject into JS any more; without it node-addon-api aborts the process.
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "<!@(pkg-config --cflags libpcsclite 2>/dev/null || echo -I/usr/include/PCSC)"],
      "libraries": ["<!@(pkg-config --libs libpcsclite 2>/dev/null || echo -lpcsclite)"]
    }
  ]
}
