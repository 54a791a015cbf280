# Fake of the cnadler86/micropython-camera-API module (Camera class), for tests.


class PixelFormat:
    GRAYSCALE = "gray"
    RGB565 = "rgb565"
    RGB888 = "rgb888"
    JPEG = "jpeg"


class FrameSize:
    R96X96 = (96, 96)
    QQVGA = (160, 120)
    QVGA = (320, 240)


class Camera:
    instances = []

    def __init__(self, pixel_format=PixelFormat.JPEG, frame_size=FrameSize.QVGA, **kw):
        self.pixel_format = pixel_format
        self.frame_size = frame_size
        self.n = 0
        self.closed = False
        Camera.instances.append(self)

    def capture(self):
        w, h = self.frame_size
        bpp = {"gray": 1, "rgb565": 2, "rgb888": 3}[self.pixel_format]
        self.n += 1
        return memoryview(bytes((i * 3 + self.n) & 0xFF for i in range(w * h * bpp)))

    def deinit(self):
        self.closed = True
