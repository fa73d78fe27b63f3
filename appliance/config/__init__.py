"""ntp.conf configuration: lexer and parser to a frozen model, with file:line errors.

:func:`load_config` reads a file (and its includes), :func:`parse_config`
parses text; both return a :class:`Config` or raise :class:`ConfigError`.
:func:`default_config_text` is the configuration the appliance ships.
"""

from appliance.config.errors import ConfigError
from appliance.config.model import Config
from appliance.config.parser import default_config_text, load_config, parse_config

__all__ = ["Config", "ConfigError", "default_config_text", "load_config", "parse_config"]
