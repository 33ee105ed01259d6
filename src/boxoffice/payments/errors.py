from boxoffice.errors import Invalid, NotFound


class PaymentRequired(Invalid):
    code, title = "payment_required", "These tickets must be paid for"


class UnsupportedPaymentMethod(Invalid):
    code, title = "unsupported_payment_method", "This payment method cannot be used here"


class PaymentNotFound(NotFound):
    title = "Payment not found"
