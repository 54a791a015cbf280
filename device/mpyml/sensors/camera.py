# mpyml.sensors.camera: frames from an ESP32-CAM or from image files.
#
#   cam = Camera(fmt=GRAY, size=(96, 96))        # board: the firmware's `camera` module
#   cam = ReplayCamera(["person.bmp", ...])       # files: BMP / PGM / PPM / raw
#   frame = bytearray(cam.frame_bytes)
#   cam.read_into(frame)                          # width*height pixels, top-down rows, in cam.fmt
#
# Camera supports the two common MicroPython camera modules of ESP32-CAM firmwares:
#   - lemariva/micropython-camera-driver (and its forks, e.g. M5Stack's):
#       camera.init(0, format=camera.GRAYSCALE, framesize=camera.FRAME_96X96); camera.capture()
#   - cnadler86/micropython-camera-API:
#       camera.Camera(pixel_format=PixelFormat.GRAYSCALE, frame_size=FrameSize.R96X96).capture()
# Both hand back a new buffer per capture (the driver allocates it); read_into copies it into the
# caller's frame buffer so the rest of the pipeline keeps working on preallocated memory.
import os

from . import GRAY, RGB565, RGB888, Copier, EndOfData, SensorError, bytes_per_pixel
from .replay import load_image

# (width, height) -> (lemariva FRAME_* name, cnadler86 FrameSize name)
_SIZES = {
    (96, 96): ("FRAME_96X96", "R96X96"),
    (160, 120): ("FRAME_QQVGA", "QQVGA"),
    (176, 144): ("FRAME_QCIF", "QCIF"),
    (240, 176): ("FRAME_HQVGA", "HQVGA"),
    (240, 240): ("FRAME_240X240", "R240X240"),
    (320, 240): ("FRAME_QVGA", "QVGA"),
}
_FMT_NAMES = {GRAY: "GRAYSCALE", RGB565: "RGB565", RGB888: "RGB888"}


class Camera:
    """ESP32-CAM (OV2640...) through the firmware's `camera` module."""

    def __init__(self, fmt=GRAY, size=(96, 96), retries=3, **init_kwargs):
        import camera                           # ImportError on firmwares without a camera module
        if size not in _SIZES:
            raise ValueError("frame size %dx%d not supported, use one of %s" % (size + (list(_SIZES),)))
        self._cam = camera
        self.fmt = fmt
        self.width, self.height = size
        self.frame_bytes = self.width * self.height * bytes_per_pixel(fmt)
        self.retries = retries
        self.captures = 0
        self.short_frames = 0
        self._init_kwargs = init_kwargs
        self._copier = Copier()
        self._obj = None
        self._open()

    def _open(self):
        cam = self._cam
        fname, cname = _SIZES[(self.width, self.height)]
        pname = _FMT_NAMES[self.fmt]
        if hasattr(cam, "Camera"):              # cnadler86 API
            self._obj = cam.Camera(pixel_format=getattr(cam.PixelFormat, pname),
                                   frame_size=getattr(cam.FrameSize, cname), **self._init_kwargs)
            self._capture = self._obj.capture
        else:                                   # lemariva-style module functions
            try:
                cam.deinit()                    # a previous soft reset may have left it running
            except Exception:
                pass
            ok = cam.init(0, format=getattr(cam, pname), framesize=getattr(cam, fname), **self._init_kwargs)
            if ok is False:
                raise SensorError(19, "camera.init failed (check the board pins / power)")
            self._capture = cam.capture

    def read_into(self, buf):
        """Capture one frame into buf (frame_bytes long). Returns frame_bytes."""
        n = self.frame_bytes
        for _ in range(self.retries):
            frame = self._capture()
            self.captures += 1
            if frame and len(frame) >= n:
                if len(frame) == n and len(buf) == n:
                    self._copier.copy(buf, frame)
                else:
                    mv = memoryview(buf)
                    mv[0:n] = memoryview(frame)[0:n]
                return n
            self.short_frames += 1
        raise SensorError(5, "camera: no complete frame")

    def reinit(self):
        self.close()
        self._open()

    def close(self):
        try:
            if self._obj is not None:
                self._obj.deinit()
            else:
                self._cam.deinit()
        except Exception:
            pass


_IMAGE_EXT = ("bmp", "pgm", "ppm", "raw", "gray", "rgb565", "rgb888", "rgb")


def _list_images(path):
    names = sorted(n for n in os.listdir(path) if n.rsplit(".", 1)[-1].lower() in _IMAGE_EXT)
    return [path + "/" + n for n in names]


class ReplayCamera:
    """Frames from image files, preloaded and converted to fmt.

    paths: one file, a list of files or a directory. BMP (palettized or 24/32-bit, bottom-up or
    top-down), binary PGM/PPM, or raw frames (.raw/.gray = GRAY, .rgb565, .rgb888; need size=).
    loop: start over after the last frame (else EndOfData). Allocates nothing per read.
    """

    def __init__(self, paths, fmt=GRAY, size=None, loop=True, raw_fmt=None):
        if isinstance(paths, str):
            try:
                is_dir = os.stat(paths)[0] & 0x4000
            except OSError:
                raise SensorError(2, "replay camera: no such file: %s" % paths)
            paths = _list_images(paths) if is_dir else [paths]
        if not paths:
            raise ValueError("replay camera: no image files")
        self.fmt = fmt
        self.paths = list(paths)
        self.frames = []
        self.width = self.height = None
        for p in self.paths:
            w, h, data = load_image(p, fmt, size[0] if size else None, size[1] if size else None, raw_fmt)
            if self.width is None:
                self.width, self.height = w, h
            elif (w, h) != (self.width, self.height):
                raise ValueError("replay camera: %s is %dx%d, expected %dx%d" % (p, w, h, self.width,
                                                                                 self.height))
            self.frames.append(data)
        self.frame_bytes = len(self.frames[0])
        self.loop = loop
        self.index = 0
        self.captures = 0
        self._copier = Copier()

    def read_into(self, buf):
        i = self.index
        if i >= len(self.frames):
            if not self.loop:
                raise EndOfData()
            i = 0
        self.index = i + 1
        frame = self.frames[i]
        if len(buf) == len(frame):
            self._copier.copy(buf, frame)
        else:
            memoryview(buf)[0:len(frame)] = frame
        self.captures += 1
        return self.frame_bytes

    @property
    def current(self):
        """Path of the frame returned by the last read."""
        return self.paths[(self.index - 1) % len(self.paths)]

    def rewind(self):
        self.index = 0

    def close(self):
        pass
