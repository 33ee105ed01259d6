from boxoffice.errors import Conflict, Invalid, NotFound, Unauthenticated


class EmailTaken(Conflict):
    code, title = "email_taken", "Email already registered"


class InvalidCredentials(Unauthenticated):
    code, title = "invalid_credentials", "Wrong email or password"


class InvalidToken(Unauthenticated):
    code, title = "invalid_token", "Invalid or expired refresh token"


class RefreshTokenReused(InvalidToken):
    """A rotated-out token came back: someone copied it, so its whole session is revoked."""

    keeps_changes = True


class WrongCurrentPassword(Invalid):
    code, title = "invalid_current_password", "The current password is wrong"


class LastAdmin(Conflict):
    code, title = "last_admin", "The platform must keep at least one admin"


class UserNotFound(NotFound):
    title = "User not found"
