# CMake toolchain overlay for building Pyfhel's bundled Microsoft SEAL offline.
# SEAL would otherwise download GSL, zlib and zstd from GitHub at build time;
# we take them from the system instead (Debian: libmsgsl-dev zlib1g-dev libzstd-dev).
set(SEAL_BUILD_DEPS OFF CACHE BOOL "" FORCE)
if(DEFINED ENV{FACEPP_SEAL_NO_SYSTEM_DEPS})
  # Fallback without any system package: no GSL, no compression of serialised objects.
  set(SEAL_USE_MSGSL OFF CACHE BOOL "" FORCE)
  set(SEAL_USE_ZLIB OFF CACHE BOOL "" FORCE)
  set(SEAL_USE_ZSTD OFF CACHE BOOL "" FORCE)
endif()
