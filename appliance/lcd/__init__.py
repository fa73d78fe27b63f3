"""The status display: pages (pure), the font, and the process that drives an I2C LCD or OLED (``runner``)."""
