{
  "targets": [
    {
      "target_name": "senv_pcsc",
      "sources": ["senv_pcsc.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # SWALLOW_UNTHROWABLE: a safety net behind CanRunJs (senv_pcsc.cc): an error made where
      # JavaScript cannot run (a worker shutting down) is dropped instead of aborting the process.
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"],
      # Hardening Debian's gcc does not apply by default: it handles APDUs that may carry keys.
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-fstack-protector-strong", "-D_FORTIFY_SOURCE=2", "<!@(pkg-config --cflags libpcsclite 2>/dev/null || echo -I/usr/include/PCSC)"],
      # nodelete: Node unloads an addon with the last environment that loaded it (a worker's end),
      # and the bridge's threads may still run its code then (a call pcscd or the card holds).
      "ldflags": ["-Wl,-z,relro,-z,now,-z,nodelete"],
      "libraries": ["<!@(pkg-config --libs libpcsclite 2>/dev/null || echo -lpcsclite)"]
    }
  ]
}
