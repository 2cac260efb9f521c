// The engine's version, as `singlora --version` prints it and generated files record it.
#pragma once

#define SINGLORA_VERSION "0.1.0"
